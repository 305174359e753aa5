"""attnq's text-as-action domain: translation where the agent writes the output word by word."""
