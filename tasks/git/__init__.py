"""Git extraction with pygit2: references and the commits the retention policies walk."""
