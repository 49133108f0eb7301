"""What a Snakemake job prints (the job console).
"""
