"""`attnq report`: train or collect runs, evaluate them beside baselines and anchors, write Markdown."""
