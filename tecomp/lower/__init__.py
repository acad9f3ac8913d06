"""Lowering: from a schedule to loop IR (bound inference, loop nests, storage flatten, passes).

``tecomp.lower`` (the function, in ``driver.py``) is the entry point; the
package attribute of the same name on ``tecomp`` is that function, as in TVM.
"""
