import sys

from olivepress.cli import main

sys.exit(main())
