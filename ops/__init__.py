"""Operations: the local stack, configuration, the composition root and the CLI."""
