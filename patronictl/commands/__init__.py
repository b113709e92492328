"""patronictl command families (each module exports COMMANDS)."""
