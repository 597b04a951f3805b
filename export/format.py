"""The `.net` format: names, version and the one error type the loader raises."""

from neurovae.hw.clock import CLOCK  # the clock the file's model runs on (root `clock`)

FORMAT_NAME = "neurovae-net"
FORMAT_VERSION = 2          # 2: the phase clock (docs/clock.md); 1 had one global clock
STAGES = ("encoder", "posterior", "prior", "sampler", "decoder", "readout")
INPUT_ENCODING = ("image bytes as graded 8-bit spikes into encoder/layer/0 (weight_exp -8): "
                  "drive = floor(conv2d(image_bytes, weight, stride, padding) / 256) at every "
                  "step of the input layer's window")
READOUT_SCALING = "image = tanh(v / 4096), v of the readout at the last step of its window"


class NetFormatError(ValueError):
    """A `.net` file is missing, damaged, foreign or invalid; the message names the group."""
