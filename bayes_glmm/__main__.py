"""``python -m bayes_glmm``: the command-line interface (see ``bayes-glmm --help``)."""
import sys

from .cli import main

sys.exit(main())
