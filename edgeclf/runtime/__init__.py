"""Run exported models: evaluate, predict, benchmark."""
