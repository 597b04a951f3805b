"""User-facing errors: each names the problem and the fix; the CLI prints one line, exit 2."""


class NeurovaeError(Exception):
    """Base class of errors caused by input the user can fix."""


class CheckpointError(NeurovaeError):
    """A checkpoint is missing, corrupt, or not a neurovae checkpoint."""


class TrainingError(NeurovaeError):
    """Training cannot go on (for example the loss became NaN)."""
