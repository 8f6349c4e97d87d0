// VirtIO: split virtqueue, device protocol, MMIO transport.
