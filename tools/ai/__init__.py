"""The AI framework: providers behind one interface, an engine that runs every AI function through
the same phases, and the functions themselves."""
