"""Result records: one envelope and one key for every command, their files, and archives of result sets."""
