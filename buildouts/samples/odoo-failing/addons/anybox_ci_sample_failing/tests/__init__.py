from . import test_postgresql, test_sample
