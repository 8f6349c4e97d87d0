// Boot: kernel loaders and boot structures.
