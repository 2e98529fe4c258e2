"""What draws: the pictures of runs and of studies (matplotlib), as PNG bytes and files.

Below cnn_jax/train.py, sweeps/ and reports/, which import it; it imports none of them.
"""
