"""Yousefzadeh et al., sigma-delta conversion: Table I and Figs. 2-4."""
