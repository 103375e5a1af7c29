"""Load generation and its report for `lmforge bench`."""
