import sys

from b2ct.cli import main

sys.exit(main())
