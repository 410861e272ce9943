import sys

from pencilbench.bench.cli import main

sys.exit(main())
