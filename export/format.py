"""The `.net` format: names, version and the one error type the loader raises."""

FORMAT_NAME = "neurovae-net"
FORMAT_VERSION = 1
STAGES = ("encoder", "posterior", "prior", "sampler", "decoder", "readout")
INPUT_ENCODING = ("drive = round_half_even(conv2d(image_bytes, encoder/layer/0/drive/weight, "
                  "stride, padding) / 256) into the input layer's a_in at steps 1..S-1")
READOUT_SCALING = "image = tanh(v / 4096), v read after the last step of each image"


class NetFormatError(ValueError):
    """A `.net` file is missing, damaged, foreign or invalid; the message names the group."""
