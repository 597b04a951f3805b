"""Evaluation metrics: FID (TF Inception), AE-FD (ANN autoencoder latent) and a classifier-based IS proxy.

The scores are re-exported as ``fid_score`` and ``aefd_score`` so that the names ``fid`` and
``aefd`` keep meaning the submodules (``neurovae.metrics.fid.fid`` is the same function).
"""
from .aefd import aefd as aefd_score
from .aefd import latent_codes, load_autoencoder
from .classifier import (Classifier, accuracy, classifier_score, confident_fraction,
                         sample_scores)
from .fid import MissingMetric, dataset_stats, inception_features
from .fid import fid as fid_score
from .frechet import MetricError, frechet_distance, stats

__all__ = ["aefd_score", "latent_codes", "load_autoencoder", "Classifier", "accuracy",
           "classifier_score", "confident_fraction", "sample_scores", "MissingMetric",
           "dataset_stats", "fid_score",
           "inception_features", "MetricError", "frechet_distance", "stats"]
