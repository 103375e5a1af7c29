"""Where the per-document stages run: `local` (a process pool on this machine) or `ray`."""
