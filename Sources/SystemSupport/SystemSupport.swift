// SystemSupport: errno, owned descriptors, epoll, eventfd, signals.
