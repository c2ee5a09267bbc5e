"""Writers for connection records: JSON lines, CSV and Zeek's conn.log TSV."""
