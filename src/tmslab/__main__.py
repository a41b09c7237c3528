import sys

from tmslab.cli import main

sys.exit(main())
