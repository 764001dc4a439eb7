import sys

from z4j_core.cli import main

sys.exit(main())
