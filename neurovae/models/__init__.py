"""Model registry: FSVAE, ESVAE (spiking) and the ANN baselines."""
from ..config import Config


def build_model(cfg: Config):
    """The model a config names, freshly initialized."""
    from .ann import ANNAE, ANNVAE
    from .esvae import ESVAE
    from .fsvae import FSVAE
    return {"fsvae": FSVAE, "esvae": ESVAE, "ann-vae": ANNVAE, "ann-ae": ANNAE}[cfg.model](cfg)
