// ContainerdAPI: generated code.
