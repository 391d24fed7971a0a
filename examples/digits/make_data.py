"""Write the 8x8 digits that scikit-learn ships to an .npz for `symbp train`.

    python examples/digits/make_data.py [digits.npz]

Arrays x (pixels / 16) and t (one-hot), and the held-out x_val and t_val: a fixed, stratified
split of 1,797 images, 80% to train on and 20% to test on (seed 0). Needs scikit-learn,
which ships the data set (pip install 'symbp[examples]'); nothing is downloaded.
"""

import sys

import numpy as np

try:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
except ImportError:
    sys.exit("make_data.py needs scikit-learn: pip install 'symbp[examples]'")


def main(path: str = "digits.npz") -> None:
    digits = load_digits()
    x = digits.data / 16.0
    t = np.eye(10)[digits.target]
    x_train, x_test, t_train, t_test = train_test_split(
        x, t, test_size=0.2, random_state=0, stratify=digits.target
    )
    np.savez(path, x=x_train, t=t_train, x_val=x_test, t_val=t_test)
    print(f"wrote {path}: {len(x_train)} training and {len(x_test)} test images")


if __name__ == "__main__":
    main(*sys.argv[1:])
