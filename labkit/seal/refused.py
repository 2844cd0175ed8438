"""Refused: what a server says when it cannot place a client in its instance, or will not run its request."""


class Refused(Exception):
    """A request the server does not run: the one line the client's `aws` prints."""
