"""The only core package that imports streamlit: shell, project context, job progress, errors.

Pages call these helpers; the logic they show lives in the service modules of ``workbench``.
"""
