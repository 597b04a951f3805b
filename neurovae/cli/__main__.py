"""`python -m neurovae.cli` (and `torchrun -m neurovae.cli`) runs the command line."""
from . import main

main()
