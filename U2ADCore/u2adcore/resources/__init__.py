"""Files the package ships: the default model."""
