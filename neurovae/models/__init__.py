"""Model registry: FSVAE, ESVAE (spiking), the ANN baselines and the metric classifier."""
from ..config import Config


def build_model(cfg: Config):
    """The model a config names, freshly initialized."""
    from .ann import ANNAE, ANNVAE
    from .esvae import ESVAE
    from .fsvae import FSVAE
    from ..metrics.classifier import Classifier
    return {"fsvae": FSVAE, "esvae": ESVAE, "ann-vae": ANNVAE, "ann-ae": ANNAE,
            "classifier": Classifier}[cfg.model](cfg)
