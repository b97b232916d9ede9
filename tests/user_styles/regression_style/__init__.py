"""A regression on scikit-learn's diabetes data: MSE, BatchNorm and Dropout, no accuracy."""
