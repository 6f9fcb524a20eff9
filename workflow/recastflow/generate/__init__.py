"""Stage generate: Pythia 8 from SLHA spectra, and the LHE / HepMC3 / Delphes hand-off."""
