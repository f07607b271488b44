"""Limits shared by validation and the sidecar's bootstrap (no imports: cheap to load)."""

MAX_REGEX_LENGTH = 1024  # Istio's limit
MAX_PROGRAM_SIZE = 32768  # Envoy runtime re2.max_program_size.error_level in our bootstraps
