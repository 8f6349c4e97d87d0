print("kata-ctl: not built yet")
