"""Convolution and pooling implementations, and which of them a layer runs on this machine.

Below model/ and config/, above only the base modules (errors, atomic_files, cache_dir,
machine): it knows layers as shapes, kernels, strides and paddings, never as configs, so the
model, validation, the engine and the command all take it as it is. Importing the package
imports nothing heavy; each module says what it needs.
"""
