// Devices: device models.
