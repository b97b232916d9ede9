"""lightning-hydra-template's MNIST example, on scikit-learn's digits."""
