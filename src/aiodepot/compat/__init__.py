"""Drop-in compatibility layers that run other libraries' APIs on aiodepot's async core.

- [`aiodepot.compat.borgstore`][aiodepot.compat.borgstore]: borgstore 0.7's synchronous API.
"""
