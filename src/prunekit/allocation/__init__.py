"""How many weights each block, layer and row loses: uniform, OWL and NeuroAL allocations."""
