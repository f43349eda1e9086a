import sys

from diffpose3d.cli import main

sys.exit(main())
