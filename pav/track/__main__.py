"""`python -m pav.track collection=DIR [head_model=PATH uv_layout=PATH landmark_embedding=PATH]`."""

from pav.tracking.__main__ import main

if __name__ == "__main__":
    main()
