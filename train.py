"""`python train.py [data=...] [model=...] [trainer=...] [key=value ...]`: the same as `python -m pav.train`."""

from pav.train.__main__ import main

if __name__ == "__main__":
    main()
