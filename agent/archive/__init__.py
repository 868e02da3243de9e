"""The knowledge archive: paper folders (`store`), their SQLite index (`index`), crash-safe file
writes (`files`) and the browser (`web`)."""
