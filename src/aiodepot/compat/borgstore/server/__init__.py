"""borgstore's ``borgstore.server`` package: the REST server (``server.rest``), served by aiodepot's."""
