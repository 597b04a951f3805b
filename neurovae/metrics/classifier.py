"""A small CNN digit/object classifier, trained by the usual loop, for a classifier-based Inception Score proxy."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import rel_entr
from torch import nn

from .. import data
from ..hw.readout import to_signed
from ..config import Config
from .frechet import MetricError

N_CLASSES = 10          # MNIST, Fashion-MNIST and CIFAR-10
MIN_PER_SPLIT = 10      # classifier_score uses fewer splits rather than splits this small
CONFIDENT = 0.9         # a sample "reads as a digit" when the classifier gives one class this much


class Classifier(nn.Module):
    """Two 3x3 conv + max-pool stages and two dense layers over 1- or 3-channel images of the config's size.

    Plugs into the training loop like the other models: ``forward`` takes uint8 images and
    the batch's training-set indices, looks their labels up and returns the loss.
    """

    kind = "classifier"
    reconstruct = None   # not a generative model: no reconstructions ...
    sample = None        # ... and no samples

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        side = cfg.image_size // 4
        self.features = nn.Sequential(
            nn.Conv2d(cfg.channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(64 * side * side, 128), nn.ReLU(),
                                  nn.Linear(128, N_CLASSES))
        self._train_set = None   # the labelled training split, loaded on first use

    def logits(self, images_pm1: torch.Tensor) -> torch.Tensor:
        """Class logits (N, 10) of float images in [-1, 1]."""
        return self.head(self.features(images_pm1))

    def forward(self, x_uint8, seed=None, images=None, ss_p=None, gen=None, labels=None):
        """Cross-entropy and accuracy of a uint8 batch; labels given, or looked up by training-set index ``images``."""
        if labels is None:
            if images is None:
                raise MetricError("the classifier needs the batch's labels or its training-set indices")
            labels = self.train_labels(images)
        labels = torch.as_tensor(labels).long().to(x_uint8.device)
        logits = self.logits(to_signed(x_uint8))
        loss = F.cross_entropy(logits, labels)
        accuracy = (logits.detach().argmax(1) == labels).float().mean()
        return {"loss": loss, "accuracy": accuracy}

    def train_labels(self, indices) -> torch.Tensor:
        """Labels (int64) of training-split images by index."""
        if self._train_set is None:
            cfg = self.cfg
            self._train_set = data.load_images(cfg.dataset, "train", cfg.data_dir, cfg.image_size,
                                               cfg.channels)
        return labels_of(self._train_set, indices)


def labels_of(image_set, indices) -> torch.Tensor:
    """Class labels (int64) of some images of a labelled ImageSet, checked to lie in 0..9."""
    get = getattr(image_set, "labels", None)
    if get is None:
        raise MetricError(f"the {image_set.name} dataset provides no class labels; the classifier "
                          f"needs mnist, fashion-mnist or cifar10")
    y = torch.as_tensor(get(indices)).long().reshape(-1)
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= N_CLASSES):
        raise MetricError(f"{image_set.name} labels must lie in 0..{N_CLASSES - 1}, "
                          f"got {int(y.min())}..{int(y.max())}")
    return y


@torch.no_grad()
def accuracy(classifier: Classifier, image_set, n: int | None = None, batch: int = 256) -> float:
    """Top-1 accuracy on the first ``n`` images (all when None) of a labelled ImageSet."""
    n = len(image_set) if n is None else min(int(n), len(image_set))
    was_training = classifier.training
    classifier.eval()
    try:
        hits = 0
        for s in range(0, n, batch):
            idx = torch.arange(s, min(s + batch, n))
            x = to_signed(image_set.tensor(idx))
            hits += int((classifier.logits(x).argmax(1) == labels_of(image_set, idx)).sum())
    finally:
        classifier.train(was_training)
    return hits / max(n, 1)


def _probabilities(images, classifier, batch: int = 256) -> torch.Tensor:
    """Softmax of the classifier over float images (N, C, H, W) in [-1, 1], in float64."""
    images = torch.as_tensor(images)
    if images.dim() != 4 or images.dtype == torch.uint8 or len(images) == 0:
        raise MetricError(f"the classifier metrics expect float images (N, C, H, W) in [-1, 1], "
                          f"got {images.dtype} of shape {tuple(images.shape)}")
    fn = getattr(classifier, "logits", classifier)
    was_training = classifier.training
    classifier.eval()
    try:
        logits = torch.cat([fn(images[s:s + batch].float()).double()
                            for s in range(0, len(images), batch)])
    finally:
        classifier.train(was_training)
    return torch.softmax(logits, dim=1)


def _confident(p: torch.Tensor, threshold: float = CONFIDENT) -> torch.Tensor:
    """Per image: does the classifier give one class probability >= threshold."""
    return p.max(dim=1).values >= threshold


def _inception_proxy(p: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) over `splits` splits (fewer when a split would hold
    under MIN_PER_SPLIT images): mean and standard deviation."""
    k = max(1, min(int(splits), len(p) // MIN_PER_SPLIT))
    scores = []
    for part in np.array_split(p, k):
        p_y = part.mean(axis=0, keepdims=True)
        scores.append(float(np.exp(rel_entr(part, p_y).sum(axis=1).mean())))
    return float(np.mean(scores)), float(np.std(scores))


@torch.no_grad()
def confident_fraction(images: torch.Tensor, classifier: nn.Module,
                       threshold: float = CONFIDENT) -> float:
    """Fraction of the images that the classifier assigns to one class with probability
    >= threshold: how many samples of a grid read as a digit at a glance."""
    return float(_confident(_probabilities(images, classifier), threshold).double().mean())


@torch.no_grad()
def classifier_score(images: torch.Tensor, classifier: nn.Module, splits: int = 10,
                     batch: int = 256) -> tuple[float, float]:
    """Classifier-based Inception Score proxy: exp(E_x KL(p(y|x) || p(y))) with this classifier's softmax.

    Not the Inception Score of the literature (that needs ImageNet Inception logits); mean
    and standard deviation over ``splits`` splits, fewer when a split would hold under 10 images.
    ``classifier`` is a :class:`Classifier` or any module mapping [-1, 1] images to logits.
    """
    return _inception_proxy(_probabilities(images, classifier, batch).numpy(), splits)


@torch.no_grad()
def sample_scores(images: torch.Tensor, classifier: nn.Module, splits: int = 10,
                  threshold: float = CONFIDENT) -> dict:
    """`classifier_score` and the per-image confidence of `confident_fraction` from one
    classifier pass: {"is_mean", "is_std", "confident" (bool per image)}."""
    p = _probabilities(images, classifier)
    mean, std = _inception_proxy(p.numpy(), splits)
    return {"is_mean": mean, "is_std": std, "confident": _confident(p, threshold)}
