import sys

from qnnfab.cli import main

sys.exit(main())
