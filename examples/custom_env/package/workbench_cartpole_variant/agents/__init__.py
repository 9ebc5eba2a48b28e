"""Agent configurations of the cartpole variant for rsl_rl (Python), rl_games and skrl (YAML)."""
