import sys

from cryptoetl.cli import main

sys.exit(main())
