import sys

from keyguard.cli import main

sys.exit(main())
