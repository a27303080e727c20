"""sigma_delta"""
