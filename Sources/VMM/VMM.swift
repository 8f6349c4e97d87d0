// VMM: builds and runs a VM.
